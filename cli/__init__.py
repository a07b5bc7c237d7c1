"""The operator's command line: `pamoja serve|migrate|schema|org|user|client|token|keys|audit|worker`."""
