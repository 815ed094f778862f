"""HTTP routes: parse, call a service, shape the response. Services live in app.state (built in the lifespan)."""
