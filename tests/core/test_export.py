

def test_the_same_function_exports_to_the_same_bytes_from_any_call_path(tmp_path):
    """Artifact fingerprints must not depend on who called export (a runner thread, a Kubeflow task)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import hashlib, sys
        import jax.numpy as jnp
        from jfx.core._export import stable_export
        import jax

        def f(p, x):
            return jnp.tanh(x * p)

        def direct():
            return stable_export(f, ["cpu"], jax.ShapeDtypeStruct((), jnp.float32),
                                 jax.ShapeDtypeStruct((4,), jnp.float32))

        def nested():
            return (lambda: direct())()

        e = direct() if sys.argv[1] == "direct" else nested()
        print(hashlib.sha256(bytes(e.serialize())).hexdigest())
    """)
    path = tmp_path / "export_twice.py"
    path.write_text(script)
    digests = {subprocess.run([sys.executable, str(path), how], capture_output=True, text=True, check=True).stdout
               for how in ("direct", "nested")}
    assert len(digests) == 1
