"""Reading corpus files: formats (JSON Lines, Markdown with front matter, text, HTML), encodings, HTML extraction.

``indexer.corpus`` walks the paths and turns what these modules read into ``Article`` records.
"""
