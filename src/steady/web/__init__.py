"""The local web studio: app, APIs, page."""
