from django.urls import path

from runs import form_views, views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("history/charts/", views.run_charts, name="charts"),
    path("history/statuses/", views.run_statuses, name="statuses"),
    path("history/export.csv", views.export_runs, name="export"),
    path("audit/", views.audit_log, name="audit_log"),
    path("audit/export.csv", views.export_audit_log, name="audit_export"),
    path("runs/new/", views.new_run, name="new"),
    path("runs/new/nodes/", form_views.node_search, name="node_search"),
    path("runs/new/preview/", form_views.selector_preview, name="selector_preview"),
    path("runs/new/job/", form_views.job_check, name="job_check"),
    path("runs/new/node-list/", form_views.catalogue_status_view, name="catalogue_status"),
    path("runs/new/node-list/refresh/", form_views.refresh_catalogue,
         name="refresh_catalogue"),
    path("runs/<int:pk>/", views.run_detail, name="detail"),
    path("runs/<int:pk>/status/", views.run_status, name="status"),
    path("runs/<int:pk>/results/refresh/", views.refresh_results, name="refresh_results"),
    path("runs/<int:pk>/cancel/", views.cancel_run, name="cancel"),
    path("runs/<int:pk>/rerun/", views.rerun_run, name="rerun"),
]
