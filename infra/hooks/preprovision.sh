#!/bin/sh
# Generate the app's secrets once per azd environment (docs/DEPLOY.md, step 2).
# Existing values are kept: azd env get-value prints them, and a re-provision reuses them.
set -eu
for name in CODE_PEPPER PHONE_HMAC_KEY GRAPH_CLIENT_STATE; do
  if [ -z "$(azd env get-value "$name" 2>/dev/null || true)" ]; then
    azd env set "$name" "$(openssl rand -base64 48 | tr -d '\n')" >/dev/null
    echo "generated $name (kept in the azd environment; the Bicep writes it to Key Vault)"
  fi
done
