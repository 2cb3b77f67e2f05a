//! Unit tests of the importer: balanced layout shape, HAMT bucket and link naming.
