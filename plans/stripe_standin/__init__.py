"""A stand-in for Stripe, for tests and laptops: `manage.py simulate_stripe`.

Only the command and the tests import this package; production code talks to Stripe through
plans/stripe_gateway.py, which the stand-in serves unchanged when STRIPE_API_BASE points at it.
`world.py` holds the objects and what happens to them over time, `server.py` the HTTP side: the
API the official `stripe` library calls, the Checkout, Customer Portal and hosted invoice pages,
and control endpoints under `/_standin/`.
"""
