"""The one-stop shop's web application: the API (``/api/v1``) and the console (``/``) in one app,
with the endpoints registries and gateways push to. See :func:`haqq.entrypoints.web.app.make_app`."""
