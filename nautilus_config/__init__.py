"""Configuration files read strictly, shared by every program of the project: the
hardened YAML loader (`strict_yaml`), the key-path checks (`checks`) and the Redis
MessageBus settings the exporter and the engines both read (`messagebus`). Every
error names the file and the key path; nothing here imports the exporter."""
