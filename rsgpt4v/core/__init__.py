"""The owners of the facts every part shares: the config, the data model, the run report, where a file
may be written, how files are read and written, how a problem is worded and coded."""
