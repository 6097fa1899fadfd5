"""CloudEvents for sor: Lambda events in, CloudEvents out, handler outcomes back to a response.

Pure functions, no IO: ``batch.to_batch`` and ``batch.answer`` are the way in and out; ``model``
holds the values and the validity check, ``builtin`` and ``http`` the mappings of AWS sources,
``declarative`` the mappings of ``cloudevents.mappings``. See docs/cloudevents.md.
"""
