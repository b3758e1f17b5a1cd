# s3.sh: the S3 part of 60-convert (sourced): needs a real Ceph RGW.
skip 'S3 target' 'not written yet'
