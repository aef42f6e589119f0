"""Using a trained codec: the Tokenizer, streaming, chunked long-file coding and token files."""
