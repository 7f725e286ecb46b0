"""What HAProxy still holds for leaving instances, summed over every HAProxy."""
from tarn_gateway_sync.drain_counts import open_requests, total_open_requests
from tarn_gateway_sync.haproxy import parse_sessions
from tarn_gateway_sync.plan import Admin, ServerState, Target


def target(port, ip="10.0.0.1"):
    return Target(f"{ip}:{port}", ip, port)


def server(name, port, admin=Admin.READY, ip="10.0.0.1", sessions=0):
    return ServerState(name, ip, port, admin, True, sessions)


def test_open_requests_are_counted_only_for_servers_in_drain_and_zero_once_a_server_is_gone():
    leaving = {t.address: t for t in (target(9000), target(9001), target(9002), target(9003))}
    observed = [server("tarn-a", 9000, Admin.DRAIN, sessions=3), server("tarn-b", 9001, Admin.READY),
                server("tarn-c", 9002, Admin.MAINT)]
    assert open_requests(leaving, observed) == {"10.0.0.1:9000": 3, "10.0.0.1:9001": None,
                                                "10.0.0.1:9002": None, "10.0.0.1:9003": 0}


def test_open_requests_add_up_over_haproxies_and_stay_unknown_if_one_does_not_know():
    totals = total_open_requests([{"a": 2, "b": 0, "c": 1}, {"a": 3, "b": None, "c": 0}])
    assert totals == {"a": 5, "b": None, "c": 1}


def test_a_servers_open_requests_are_its_current_sessions_plus_those_queued_for_it():
    stat = ("# pxname,svname,qcur,qmax,scur,smax\n"
            "be,tarn-a,2,5,4,8\nbe,tarn-b,0,0,0,3\nbe,BACKEND,0,0,4,8\n")
    assert parse_sessions(stat) == {"tarn-a": 6, "tarn-b": 0}


def test_the_answers_of_several_show_stats_in_one_request_are_read_each_with_its_own_header():
    stat = ("# pxname,svname,qcur,qmax,scur,smax\nbe,tarn-a,1,1,2,2\n\n"
            "# pxname,svname,qcur,qmax,scur,smax\nbe,tarn-b,0,0,3,3\n\n"
            "# pxname,svname,qcur,qmax,scur,smax\n\n")  # an id no server has any more: a header alone
    assert parse_sessions(stat) == {"tarn-a": 3, "tarn-b": 3}
