"""The shared core under both plugins and the operations layer.

Only what tap and target must agree on lives here, once: the HTTP retry policy
(`retry`), `fernet:` settings (`encrypted_settings`), redaction of secrets in
messages (`redaction`), the bearer-token cache (`token_cache`), the batch files
the tap writes and the target reads (`batch_files`) and product-wide defaults
(`defaults`). It imports nothing of the project above it.
"""
