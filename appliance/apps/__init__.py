"""App Connections: the OctoEverywhere-compatible portal, connections and their credentials, the app API, live links."""
