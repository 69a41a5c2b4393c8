"""Publishing an export: the Parquet shards of the `hf` form, the dataset card with its figures, the
Croissant metadata, and the upload to the Hugging Face Hub."""
