"""Network runs: a cycle of models, each output the next one's input, from a genesis."""
