"""CsvExampleGen's data, read in C++: pyarrow's CSV reader and tfx_bsl's tf.Example encoder in place of a
Python parse of each line (columns.py: the types; executor.py: the executor CsvExampleGen runs)."""
