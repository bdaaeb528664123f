"""What a release is built into, and the content-derived names they carry: wheels, the image, the compiled spec."""
