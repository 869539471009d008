"""Finding, identifying and describing Stable Diffusion models. Imports no torch.

detect.inspect_model(path) reads a checkpoint's tensor names and shapes (the safetensors header
is plain JSON) and says what it is; resolve.find_model(name) finds it under the models folder;
hashing.short_hash(path) gives the A1111 hash. Loading weights is the worker's job
(steady.worker.loader), which starts from the full-size configs shipped under configs/.
"""
