"""Local stand-in for the Usersnap REST API v0.1, used by the tests and `usersnap-channels dev-server`."""

from usersnap_channels.devserver.server import DevServer, FaultConfig, RequestRecord, Workspace, serve

__all__ = ["DevServer", "FaultConfig", "RequestRecord", "Workspace", "serve"]
