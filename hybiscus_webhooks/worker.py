"""For the ``dramatiq`` command: ``dramatiq your_app.broker hybiscus_webhooks.worker``.

Importing this module declares the delivery actor on the broker that ``your_app.broker`` set
with ``dramatiq.set_broker``; it fails if none was set.
"""

from .delivery import install

deliver = install()
