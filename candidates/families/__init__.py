"""Model families: the code that loads and runs a kind of model behind the Candidate interface."""
