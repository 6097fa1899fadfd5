"""Loading the handler ``module.function`` or ``dir/module.function``, as awslambdaric does."""

import importlib
import sys


class Fault(Exception):
    """A failure Lambda names itself (Runtime.*), with awslambdaric's message and trace."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


def load_handler(spec):
    """The handler function named ``module.function`` or ``dir/module.function``."""
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {e}") from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise Fault(
                "Runtime.BuiltInModuleConflict",
                f"Cannot use built-in module {modname} as a handler module",
            )
        # importlib, as awslambdaric: its frames are part of the stack trace users compare.
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {e}", trace
        ) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        ) from None
