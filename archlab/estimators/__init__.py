"""Cheap estimators of a network's quality before it is trained: zero-cost proxies and their aggregates.

They score an untrained network from one or two minibatches of the study's data; nothing here trains or times.
Beside them, `latency_model` and `latency_fit` predict a network's latency on one device from measured networks.
"""
