"""Domain package of the messaging relay, shared by every function through the layer."""
