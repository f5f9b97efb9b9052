"""The recording lifecycle: callback, ingestion, storage, Twilio adapter, reconciliation."""
