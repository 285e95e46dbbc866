"""Commands built on a whole run: doctor (this machine's floors), export (a recipe saved as a checkpoint), rescore."""
