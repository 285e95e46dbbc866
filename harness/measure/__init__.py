"""Inside the measured child: the worker, token timing, memory, GPU counters, roofline, quality pass, nota2025 timing."""
