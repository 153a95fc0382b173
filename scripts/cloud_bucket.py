#!/usr/bin/env python3
"""Creates an empty container on Azurite or bucket on fake-gcs-server, for the tests.

    cloud_bucket.py azure NAME   # PQM_AZURE_ENDPOINT, AZURE_STORAGE_ACCOUNT_NAME/_KEY
    cloud_bucket.py gcs NAME     # PQM_GCS_ENDPOINT
    cloud_bucket.py gcs-list NAME   # prints the bucket's object names, one a line

object_store, which the engine talks to both with, has no call that creates one. Standard library
only: the Azure request is signed with the account key (Shared Key), the emulated GCS JSON API
takes the request without credentials.
"""

import base64
import email.utils
import hashlib
import hmac
import json
import os
import sys
import urllib.parse
import urllib.request

AZURE_VERSION = "2021-12-02"


def azure(name: str) -> None:
    endpoint = os.environ["PQM_AZURE_ENDPOINT"].rstrip("/")
    account = os.environ["AZURE_STORAGE_ACCOUNT_NAME"]
    key = base64.b64decode(os.environ["AZURE_STORAGE_ACCOUNT_KEY"])
    url = f"{endpoint}/{name}?restype=container"
    date = email.utils.formatdate(usegmt=True)
    path = urllib.parse.urlparse(url).path
    # VERB, then eleven standard headers (all empty here), then the x-ms- headers and the
    # resource, as the Shared Key scheme orders them.
    to_sign = (
        "PUT\n" + "\n" * 11
        + f"x-ms-date:{date}\nx-ms-version:{AZURE_VERSION}\n"
        + f"/{account}{path}\nrestype:container"
    )
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    request = urllib.request.Request(url, method="PUT")
    request.add_header("x-ms-date", date)
    request.add_header("x-ms-version", AZURE_VERSION)
    request.add_header("Authorization", f"SharedKey {account}:{signature}")
    urllib.request.urlopen(request, timeout=30).close()


def gcs(name: str) -> None:
    endpoint = os.environ["PQM_GCS_ENDPOINT"].rstrip("/")
    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b?project=pqmigrate",
        method="POST",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()


def gcs_list(name: str) -> None:
    """Lists through the JSON API: the emulator serves no XML-API listing."""
    endpoint = os.environ["PQM_GCS_ENDPOINT"].rstrip("/")
    with urllib.request.urlopen(f"{endpoint}/storage/v1/b/{name}/o", timeout=30) as answer:
        for item in json.load(answer).get("items", []):
            print(item["name"])


if __name__ == "__main__":
    kind, name = sys.argv[1], sys.argv[2]
    {"azure": azure, "gcs": gcs, "gcs-list": gcs_list}[kind](name)
