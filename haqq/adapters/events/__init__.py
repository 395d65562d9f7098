"""Life events pushed by registries: SPDCI ``notify`` envelopes and OpenCRVS-style webhooks.

Pure parts only (envelopes, signatures, mappings to haqq's life-event form); the HTTP face is
:mod:`haqq.entrypoints.events_api`.
"""
