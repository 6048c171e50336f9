"""The edges: the command line, the runner of one pipeline run, the summary report."""
