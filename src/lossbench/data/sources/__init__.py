"""Where collections come from: file formats, local folders (BEIR, TREC/TSV), ir_datasets ids, and the
embedded synthetic collection. Each reader produces a :class:`~lossbench.data.collection.Collection`."""
