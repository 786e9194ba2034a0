"""Pieces for end-to-end tests: real `dramatiq` worker processes, a slow receiver, a private RabbitMQ node."""
