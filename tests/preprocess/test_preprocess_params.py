"""The Elastix parameter maps are files in the repo and say what the issue asks of them."""

from models.preprocess.registration import ElastixSettings, load_parameter_maps


def test_parameter_maps_load_from_files():
    params = load_parameter_maps(ElastixSettings())
    assert params.GetNumberOfParameterMaps() == 2
    rigid, bspline = params.GetParameterMap(0), params.GetParameterMap(1)
    assert rigid["Transform"] == ("EulerTransform",)
    assert bspline["Transform"] == ("BSplineTransform",)
    assert "AdvancedMattesMutualInformation" in bspline["Metric"]
    assert "TransformBendingEnergyPenalty" in bspline["Metric"]
    assert int(bspline["NumberOfResolutions"][0]) > 1
