#!/bin/sh
# t_layers.sh — checks the dependency rule of common/ (doc/ARCHITECTURE.md):
#
#   base <- kernels <- formats <- model;  data on base + formats;
#   train and generate above model (and data);  rl above train and generate;
#   serve (HTTP server, engine, logs) above rl;
#   tools/ above all.
#
# Headers named *_impl.h or *_internal.h are private to their folder.
# A file in common/X may include headers of X itself (by bare name) and of the layers
# X may use (by "layer/name.h"); anything else is a violation.  A cross-folder include
# without its folder is a violation too, so the dependency is visible where it is made.
# Exit 0 when clean, 1 with one line per violation.
cd "$(dirname "$0")/.." || exit 2

allowed() {
  case "$1" in
    base)     echo "" ;;
    kernels)  echo "base" ;;
    formats)  echo "base kernels" ;;
    model)    echo "base kernels formats" ;;
    data)     echo "base formats" ;;
    train)    echo "base kernels formats model data" ;;
    generate) echo "base kernels formats model data" ;;
    rl)       echo "base kernels formats model data train generate" ;;
    serve)    echo "base kernels formats model data train generate rl" ;;
    *)        echo "?" ;;
  esac
}

bad=0
for f in common/*/*.c common/*/*.h; do
  layer=$(echo "$f" | cut -d/ -f2)
  ok=$(allowed "$layer")
  if [ "$ok" = "?" ]; then echo "$f: folder '$layer' is not a known layer"; bad=1; continue; fi
  # quoted includes only; system headers are not ours
  grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
    n=${line%%:*}
    inc=$(echo "$line" | sed 's/.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/')
    case "$inc" in
      */*)
        dir=${inc%%/*}
        if [ "$dir" = "$layer" ]; then
          echo "$f:$n: \"$inc\": same-folder include should be bare"; echo x >&3
        elif echo "$inc" | grep -q '_impl\.h$\|_internal\.h$'; then
          echo "$f:$n: \"$inc\": private header of $dir"; echo x >&3
        elif [ "$dir" = "$layer" ]; then
          echo "$f:$n: \"$inc\": same-folder include should be bare"; echo x >&3
        elif ! echo " $ok " | grep -q " $dir "; then
          echo "$f:$n: \"$inc\": $layer may not depend on $dir"; echo x >&3
        fi ;;
      *)
        if [ ! -f "common/$layer/$inc" ]; then
          case "$inc" in gemm_cuda.h) ;; # cuda/ backend, behind the gemm seam
            *) echo "$f:$n: \"$inc\": not in common/$layer (name the folder)"; echo x >&3 ;;
          esac
        fi ;;
    esac
  done
done 3>/tmp/layers.$$
# tools/ and tests/ name the folder of every common/ header they include
for f in tools/*.c; do
  grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^/"]*"' "$f" | while IFS= read -r line; do
    echo "$f:${line%%:*}: include without its folder"; echo x >&3
  done
done 3>>/tmp/layers.$$
[ -s /tmp/layers.$$ ] && bad=1
rm -f /tmp/layers.$$
if [ $bad -eq 0 ]; then echo "t_layers: common/ follows the layer rule"; fi
exit $bad
