"""lalm-bench's engine. Its root holds what plugins import (candidate, types, options, suites,
streaming, spec, registry, paths); the subpackages follow a run: data -> run -> measure -> score,
with sweep/, serve/ and commands/ on top (see `.importlinter` for the rules)."""
