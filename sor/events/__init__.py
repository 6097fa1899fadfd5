"""CloudEvents for sor: Lambda events in, CloudEvents out, handler outcomes back to a response.

Pure functions, no IO: ``batch.to_batch`` and ``batch.answer`` are the way in and out; ``model``
holds the values and the validity check, ``builtin`` and ``http`` the mappings of AWS sources
(``headers`` decodes ``ce-`` header values), ``declarative`` the mappings of
``cloudevents.mappings``, ``problem`` the HTTP 400 answer to a malformed CloudEvent. See
docs/cloudevents.md.
"""
