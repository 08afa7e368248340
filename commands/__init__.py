"""The command-line tools: thin click front-ends over the domain code in ``tasks``."""
