//! `hydrant export`: a CARv1 of a DAG, read from the local store.
