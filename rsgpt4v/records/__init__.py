"""The output contract: the record model and its check, box text per flavour, the dataset writer and
the streaming reader of what a build wrote."""
