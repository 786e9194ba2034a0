"""Companions of hybiscus_webhooks: a reference report server, a webhook receiver and the demo.

Installed from the ``contrib/`` directory of the source tree. The report server and the demo need
the ``demo`` extra (``pip install 'hybiscus-webhooks[demo]'``).
"""
