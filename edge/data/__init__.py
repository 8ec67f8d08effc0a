"""Face data the runtime and compress both read: labelled photo folders (``labelled``) and the
built-in synthetic faces (``synthetic``) behind the demo, the tests and the ``synthetic:``
source."""
