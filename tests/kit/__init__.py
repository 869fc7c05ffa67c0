"""The test kit's shared pieces that are not fakes: the fixtures that start the cloud fakes
once per module (``clouds``) and the workspace's configuration files (``configs``)."""
