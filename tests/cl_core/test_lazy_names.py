import pytest

import cl_core.losses


def test_a_lazy_name_loads_from_its_module_and_an_unknown_one_is_an_attribute_error():
    from cl_core.losses.ntxent import NTXentLoss

    assert cl_core.losses.NTXentLoss is NTXentLoss
    assert "build_objective" in dir(cl_core.losses)
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        cl_core.losses.nosuch  # noqa: B018
