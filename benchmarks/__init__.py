"""On-device speed, memory and size, and the accuracy of compressed versus full models."""
