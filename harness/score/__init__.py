"""Scores from predictions: WER and caption metrics, suite scoring, bootstrap intervals, submission files."""
