"""The record: LanceDB tables, blobs, the journal and the indexes.

Importing it defers lance-namespace's REST client package (see ``deferred_import``): about a
second off every command's start.
"""

from sandloop.storage.deferred_import import defer_package_init

defer_package_init("lance_namespace_urllib3_client")
