"""Adapters: how a request is put to each kind of backend."""
