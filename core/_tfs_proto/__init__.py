"""TensorFlow Serving's gRPC API: the ``.proto`` files and the modules generated from them.

The ``.proto`` files here hold the messages and services ``jfx serve --grpc_port`` speaks,
under TensorFlow's own proto packages (``tensorflow``, ``tensorflow.serving``) with the
public field numbers, so an existing TensorFlow Serving client talks to it unchanged.
The ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` modules are generated from them with
grpcio-tools and committed; after changing a ``.proto`` file, regenerate them with::

    python -m jfx.core._tfs_proto._generate

(a test regenerates them into a temporary folder and compares, so they cannot drift).
"""
