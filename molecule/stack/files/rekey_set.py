"""Give a copied backup set another SECRET_KEY and a manifest whose sha256 matches it (restore drill)."""
import hashlib
import json
import sys

directory = sys.argv[1]
with open(directory + "/secrets.json") as handle:
    secrets = json.load(handle)
secrets["SECRET_KEY"] = "drill" + "0" * 43
with open(directory + "/secrets.json", "w") as handle:
    json.dump(secrets, handle)
with open(directory + "/secrets.json", "rb") as handle:
    digest = hashlib.sha256(handle.read()).hexdigest()
with open(directory + "/manifest.json") as handle:
    manifest = json.load(handle)
for entry in manifest["files"]:
    if entry["name"] == "secrets.json":
        entry["sha256"] = digest
with open(directory + "/manifest.json", "w") as handle:
    json.dump(manifest, handle)
