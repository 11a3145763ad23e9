"""The MQTT area: Home Assistant sees every published printer as an MQTT-discovered device, pushed live.

- ``discovery.py``  what Herald publishes: topics, the device, each entity's discovery config, the
                    JSON state, the device triggers (pure functions, tested against Home Assistant's
                    own schemas)
- ``outbox.py``     the bounded in-memory queue between status ingest and the broker (latest wins)
- ``broker.py``     the MQTT task: connect, publish everything on (re)connect, drain the outbox,
                    reconnect with backoff; its state for the admin page
- ``publishing.py`` whose printers are published (the owner's choice per printer) and the listeners
                    create_app wires to status ingest, events and a printer's end
- ``control.py``    the seam for pause / resume / cancel from Home Assistant's buttons (not yet:
                    it needs the relay's tunnel)
- ``routes.py``     Admin > Home Assistant (the broker) and the printer page's toggle

docs/home-assistant.md tells users how to set it up.
"""
