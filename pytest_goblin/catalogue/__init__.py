"""What exists, as data: the model architectures and the devices a workload may name.

Both catalogues sit below the pipeline: the schemas validate a workload's ``model`` and
budget device names against them, the knowledge base's conditions read model dims, the
analytic model prices FLOPs and bytes with the device figures, and the torch engines
build networks from the dims. Nothing here runs anything.
"""
