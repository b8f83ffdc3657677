"""The `llmft` command: one typer sub-app per stage, all sharing output and error handling."""
