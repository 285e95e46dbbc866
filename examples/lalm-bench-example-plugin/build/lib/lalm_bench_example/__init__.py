"""Example lalm-bench plugin (see the README section "Writing a candidate")."""
